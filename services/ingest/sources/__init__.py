"""One folder per input shape: its mapping, its HTTP routes and what it stores."""
