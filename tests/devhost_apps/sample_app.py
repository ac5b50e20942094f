"""The devhost sample app: HTTP routes, timers and a queue trigger, from two blueprints."""

import azure.functions as func

from tests.devhost_apps import jobs, routes

# FUNCTION auth level: devhost, like Core Tools, does not check keys.
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(routes.bp)
app.register_functions(jobs.bp)
