"""The console's fixtures (in console_fixtures, which the test modules import by name)."""

from tests.console.console_fixtures import (  # noqa: F401
    console_project,
    directory,
    directory_project,
    users_file,
)
