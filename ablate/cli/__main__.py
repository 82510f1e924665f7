"""`python -m ablate.cli`."""

import sys

from ablate.cli.main import main

sys.exit(main())
