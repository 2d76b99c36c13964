"""Images in, symbols out: zxing-cpp first, zbar with preprocessing passes, worker pool."""
