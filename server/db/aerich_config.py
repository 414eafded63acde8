"""The config the `aerich` CLI reads to generate migrations (`TASKER_DATABASE_URL`)."""

import os

from server.db.setup import tortoise_config

TORTOISE_ORM = tortoise_config(os.environ.get("TASKER_DATABASE_URL", "sqlite://./tasker.db"))
