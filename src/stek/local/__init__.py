"""The local runtime: template.yaml brought up on an AWS emulator, with Lambda's behaviour."""
