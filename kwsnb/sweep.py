"""``python -m kwsnb.sweep``: a notebook run with papermill over a parameter grid (the code is
``kwsnb.notebooks.sweep``; this module keeps the short command line)."""
import sys

from kwsnb.notebooks.sweep import main

if __name__ == "__main__":
    sys.exit(main())
