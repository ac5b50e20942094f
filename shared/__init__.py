"""What every feature uses: settings, HTTP plumbing, storage, secrets, clients."""
