"""What every API route shares: its parameter types (`params`), its one error body
(`errors`) and the OpenAPI document built from the routes (`document`)."""
