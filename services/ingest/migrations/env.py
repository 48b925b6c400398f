from services.ingest.models import Base
from shared.migrations import run_migrations_in_env

run_migrations_in_env(Base.metadata)
