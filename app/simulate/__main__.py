"""``python -m app.simulate ...``"""

import sys

from app.simulate.cli import main

sys.exit(main())
