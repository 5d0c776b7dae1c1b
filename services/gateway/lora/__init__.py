"""The models a gateway serves: the base and the LoRA adapters the decoders load, shared by every gateway
replica, resolved per tenant, loaded and unloaded at run time."""
