"""`reckoning bench`: where encode-once beats in-context reasoning, in numbers (the `bench` extra; not in the image)."""
