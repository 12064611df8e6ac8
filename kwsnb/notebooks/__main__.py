"""``python -m kwsnb.notebooks [--check]``: renders notebooks/*.ipynb from their templates."""
import sys

from kwsnb.notebooks.render import main

sys.exit(main())
