import sys

from tirg.main import main

sys.exit(main())
