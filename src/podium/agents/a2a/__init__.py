"""A2A agents: the client, agent cards, results, transport and the hosting of demo agents."""
