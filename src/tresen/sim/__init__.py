"""Provider simulators: real HTTP servers speaking the providers' wire formats."""
