"""Images: content inspection (validate, fingerprint, thumbnail) and the image catalog."""
