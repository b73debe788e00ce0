"""From searched widths to a network to deploy: weights in and out, pruning, fine-tuning."""
