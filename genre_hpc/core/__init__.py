"""What every other part stands on: the error family, the atomic writer, the output layout, versions."""
