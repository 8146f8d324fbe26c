"""Everything that knows about ranks: the torchrun environment and process groups, DDP/FSDP2 wrapping and the
eval's full replica, sharded loading, shard bounds, gathers to the leader with a timeout, and stop agreement.
Code elsewhere asks these functions instead of calling `torch.distributed` itself."""
