"""The landscape library and learning to tune: recorded landscapes, their features, a pretrained policy."""
