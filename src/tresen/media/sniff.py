"""Which media types tresen accepts, and whether a file's first bytes match its declared type."""

from __future__ import annotations

from tresen.domain.errors import DomainError

ALLOWED = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "application/pdf",
        "audio/ogg",
        "audio/mpeg",
        "audio/mp4",
        "audio/aac",
        "audio/amr",
        "video/mp4",
        "video/3gpp",
        "video/quicktime",
        "video/webm",
        "text/plain",
    }
)
"""The allow-list: images, PDF, audio, video and plain text (never HTML, SVG or scripts)."""

EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image/jpeg": (".jpg", ".jpeg"),
    "image/png": (".png",),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
    "application/pdf": (".pdf",),
    "audio/ogg": (".ogg", ".oga", ".opus"),
    "audio/mpeg": (".mp3",),
    "audio/mp4": (".m4a", ".mp4"),
    "audio/aac": (".aac",),
    "audio/amr": (".amr",),
    "video/mp4": (".mp4", ".m4v"),
    "video/3gpp": (".3gp", ".3g2"),
    "video/quicktime": (".mov",),
    "video/webm": (".webm",),
    "text/plain": (".txt",),
}
"""The file name extensions of each allowed type; the first is the one given to a stored file."""

INLINE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""Types a browser may show inline; everything else is served as a download."""

HEAD_BYTES = 512
"""How many leading bytes `sniff` looks at."""

_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "audio/mp3": "audio/mpeg",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/opus": "audio/ogg",
    "application/ogg": "audio/ogg",
    "audio/x-aac": "audio/aac",
    "video/3gpp2": "video/3gpp",
}
# ISO base media files (ftyp box) are told apart by their declared type, not their brand.
_ISO_FAMILY = frozenset({"audio/mp4", "video/mp4", "video/3gpp", "video/quicktime"})
_UNKNOWN = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_MARKUP = (b"<", b"\xef\xbb\xbf<")


class MediaRefused(DomainError):
    """A file that is not stored: too large, not allowed, or not what it claims to be."""


def normalise(declared: str | None) -> str:
    """A declared Content-Type without parameters, lower case, aliases mapped."""
    base = (declared or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def sniff(head: bytes) -> str | None:
    """The allowed type the first bytes show, or None (text is decided by `check`)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3") or (
        len(head) >= 2 and head[0] == 0xFF and head[1] in (0xFB, 0xF3, 0xF2)
    ):
        return "audio/mpeg"
    if len(head) >= 2 and head[0] == 0xFF and head[1] in (0xF1, 0xF9):
        return "audio/aac"
    if head.startswith(b"#!AMR"):
        return "audio/amr"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head.startswith(b"\x1aE\xdf\xa3"):
        return "video/webm"
    return None


def _is_plain_text(head: bytes) -> bool:
    """UTF-8 without NUL bytes that does not start like markup."""
    if b"\x00" in head or head.lstrip().startswith(_MARKUP):
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut off at the end of the sample is fine.
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True


def check(declared: str | None, head: bytes) -> str:
    """The type to store the file as, or MediaRefused when it is not allowed or lies."""
    claimed = normalise(declared)
    found = sniff(head[:HEAD_BYTES])
    if claimed not in _UNKNOWN and claimed not in ALLOWED:
        raise MediaRefused(
            "type_not_allowed",
            "files of type {claimed} are not accepted",
            params={"claimed": claimed},
        )
    if found is None:
        if claimed in ("text/plain", *_UNKNOWN) and head and _is_plain_text(head[:HEAD_BYTES]):
            return "text/plain"
        if claimed in _UNKNOWN:
            raise MediaRefused("type_mismatch", "the file's content is not an accepted file")
        raise MediaRefused(
            "type_mismatch",
            "the file's content is not an accepted {claimed} file",
            params={"claimed": claimed},
        )
    if claimed in _UNKNOWN:
        return found
    if found == claimed or (found == "video/mp4" and claimed in _ISO_FAMILY):
        return claimed
    raise MediaRefused(
        "type_mismatch",
        "the file claims to be {claimed} but its content is {found}",
        params={"claimed": claimed, "found": found},
    )
