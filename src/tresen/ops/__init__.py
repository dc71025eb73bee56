"""Running an install: key fingerprints, process heartbeats, start-up checks, doctor."""
