"""Programs that learn from recorded landscapes: record one, pretrain the policy, measure transfer."""
