"""Cut-and-paste compositing: objects on backgrounds, copy-paste augmentation."""
