"""python -m edge.cli"""

import sys

from edge.cli import main

if __name__ == "__main__":
    sys.exit(main())
