"""What runs the data flow: config checks, the manifest, the cluster and what stages ask of a client."""
