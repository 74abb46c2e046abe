"""Make ``import pipelines`` find the repository's package.

Test folders have no ``__init__.py``, so pytest puts ``tests/`` on ``sys.path``, where this very
folder looks like a namespace package called ``pipelines``; an editable install resolves
packages after ``sys.path`` and would lose to it. With the repository root on ``sys.path`` the
real (regular) package wins, as a regular package always does over a namespace folder.
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
