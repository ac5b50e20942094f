"""An HTTP-only app without a catch-all route: unmatched requests get the host's empty 404."""

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="hello/{name}", methods=["GET"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"hello {req.route_params['name']}")


@app.function_name("ping")
@app.route()
def ping_handler(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")
