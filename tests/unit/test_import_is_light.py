"""Cold start: importing the app must not load the heavy SDKs; they load when first used."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("msal", "requests", "jwt", "azure.identity", "azure.data.tables", "azure.keyvault.secrets",
         "azure.storage.queue", "msgspec")


def test_function_app_import_loads_no_sdk_client():
    probe = f"import sys, function_app; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_a_bad_setting_stops_the_app_at_import_naming_it():
    probe = "import function_app"
    env = {"PATH": "/usr/bin:/bin", "PUBLIC_BASE_URL": "http://127.0.0.1:7071",
           "ALLOWED_RETURN_ORIGINS": "https://app.10kc.example",
           "APP_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
           "SERVICE_STORAGE": "UseDevelopmentStorage=true", "KEY_VAULT_URL": "http://vault.example"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    assert out.returncode != 0
    assert "KEY_VAULT_URL must use https" in out.stderr


def test_the_notification_validation_answer_loads_no_sdk():
    """Graph gives the validation request 10 s, also on a cold start: answering it imports nothing
    heavy (no storage, no identity, no HTTP client)."""
    probe = (
        "import asyncio, sys, azure.functions as func, function_app\n"
        "from sync.routes import graph_notifications\n"
        "req = func.HttpRequest('POST', 'http://127.0.0.1/api/graph/notifications', "
        "params={'validationToken': 'Validation: a b'}, body=b'')\n"
        "answer = asyncio.run(graph_notifications(req))\n"
        "assert answer.status_code == 200 and answer.get_body() == b'Validation: a b', answer.get_body()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_a_notification_delivery_loads_no_identity_or_vault_sdk():
    """The route makes no Graph or Key Vault call, so its first delivery on a new instance does
    not pay for their imports either (no MSAL, azure-identity, Key Vault or JWT library: about
    0.4 s of a cold answer before). The item here is forged, so it is dropped unread."""
    probe = (
        "import asyncio, json, sys, azure.functions as func, function_app\n"
        "from sync.routes import graph_notifications\n"
        "body = json.dumps({'value': [{'subscriptionId': 's', 'clientState': 'forged',\n"
        "                              'resourceData': {'id': 'e'}}]}).encode()\n"
        "req = func.HttpRequest('POST', 'http://127.0.0.1/api/graph/notifications', body=body)\n"
        "answer = asyncio.run(graph_notifications(req))\n"
        "assert answer.status_code == 202, answer.get_body()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert set(out.stdout.strip().split(",")) - {""} <= {"requests", "azure.data.tables", "azure.storage.queue"}
