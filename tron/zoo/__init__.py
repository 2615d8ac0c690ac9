"""The model zoo: small worlds trained by the recipes in `tron.recipes`, shipped as safetensors."""
