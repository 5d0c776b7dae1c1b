"""Input handling and helpers shared by the gateway, the encoder and the decoder (import the modules)."""
