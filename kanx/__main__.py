"""``python -m kanx``."""

from kanx.cli import main

main()
