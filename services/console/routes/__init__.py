"""The console's routes: a module-level router per resource, as every Vitals service
has them. Each route reads the console's state through ``context.Context`` and who is
signed in through ``context.Person``; ``create_app`` includes the routers."""
