"""`python -m tresen` runs the CLI."""

from tresen.cli import main

main()
