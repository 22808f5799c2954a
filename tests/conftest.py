import os
import sys

# Many tests start weightspace in processes of their own (kills, resumes, two runs at once): let
# Python keep the compiled bytecode (in the git-ignored __pycache__ folders), of the package and of
# what it imports, so that each process does not compile it again, even where the environment says
# not to write it. `make test` leaves the compiling to this first import (see the Makefile). Set
# before torch is imported, so that this process writes it too.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
