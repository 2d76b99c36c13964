"""Hand-over of seeds the station generated: one burned-token record, one writer per format."""
