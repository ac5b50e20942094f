"""The Function App: one blueprint per feature. Settings are checked here, at load, so a bad one
stops the app at start with its name; nothing here does I/O or builds an SDK client."""

import azure.functions as func

from availability.routes import bp as availability_bp
from background.functions import bp as background_bp
from booking.routes import bp as booking_bp
from consent.routes import bp as consent_bp
from shared import platform_routes
from shared.logs import configure_logging
from shared.settings import get_settings
from sync.routes import bp as sync_bp

configure_logging(get_settings().log_level)

# No function keys: the server-to-server routes check the caller's Entra ID token themselves
# (shared/callers.py), the same way locally and on Azure; the other routes are public by design.
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(consent_bp)
app.register_functions(availability_bp)
app.register_functions(booking_bp)
app.register_functions(background_bp)
app.register_functions(sync_bp)
app.register_functions(platform_routes.bp)
platform_routes.bind_routes(app)
