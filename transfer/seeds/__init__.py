"""The seed documents' recipes (losses, layers, optimiser settings), reproduced exactly."""
