"""``python -m kwsnb.train``: the seed's command line, trained, exported and evaluated
(``kwsnb.pipeline``)."""
import sys

from kwsnb.pipeline import main

sys.exit(main())
