import os
import sys

import pytest
import torch

# Many tests start weightspace in processes of their own (kills, resumes, two runs at once): let
# Python keep the compiled bytecode of the package (in the git-ignored __pycache__ folders) so that
# each of them does not compile it again, even where the environment says not to write it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
