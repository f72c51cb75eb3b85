import os
import sys

from .cli import main

code = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # a rank under torchrun: everything is written and the process group is destroyed by now; leave
    # without C++ static destructors, where a gloo thread still being torn down can abort the
    # process ("terminate called without an active exception") after a run that succeeded
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)
raise SystemExit(code)
