"""Job: run moto's own server (moto_server) with tests/peers/moto_patch.py applied.

Usage (same arguments as moto_server):
    $REPO/.test-work/venv/bin/python tests/peers/moto_patched.py -H 127.0.0.1 -p PORT
Env: MOTO_ECR_TOKEN_LIFETIME (seconds, default 43200), MOTO_CALL_LOG (file to append
call lines to). See moto_patch.py for what is patched and the moto facts.
"""
import os
import sys

sys.dont_write_bytecode = True  # keep tests/peers free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import moto_patch  # noqa: E402

moto_patch.apply()

from moto.server import main  # noqa: E402

if __name__ == "__main__":
    main(sys.argv[1:])
