from services.alerts.models import Base
from shared.migrations import run_migrations_in_env

run_migrations_in_env(Base.metadata)
