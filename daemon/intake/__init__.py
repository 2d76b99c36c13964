"""Files in, jobs out: the drop folder, safe reading, QR decoding, payload classification."""
