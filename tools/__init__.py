"""Developer tooling: starting the local stack (Azurite, the sandbox, the host). Never deployed."""
