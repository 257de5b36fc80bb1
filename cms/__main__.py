"""`python -m cms`."""

from cms.cli import main

main()
