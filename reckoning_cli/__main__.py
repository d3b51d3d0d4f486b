"""`python -m reckoning_cli ...` (and `torchrun -m reckoning_cli train ...`): the same as `reckoning ...`."""

from reckoning_cli.main import main

main()
