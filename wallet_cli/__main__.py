"""`python -m wallet_cli`: the `wallet` command without its console script."""

import sys

from wallet_cli.main import main

sys.exit(main())
