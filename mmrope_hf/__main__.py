import sys

from mmrope_hf.integrations.cli.cli import main

sys.exit(main())
