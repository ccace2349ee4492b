import sys

from rvae.cli import main

sys.exit(main())
