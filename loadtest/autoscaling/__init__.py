"""The autoscaling scenario: a load that moves between the encoder and the decoder, and each pool's
replica count following its own part of it (`python -m loadtest.autoscaling.run`)."""
