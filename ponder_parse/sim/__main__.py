import sys

from ponder_parse.sim.simulate import main

sys.exit(main())
