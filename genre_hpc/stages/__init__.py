"""One thin module per CLI stage: `run(cfg, client, out)` calls the data flow; no stage imports another."""
