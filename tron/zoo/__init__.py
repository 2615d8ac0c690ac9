"""The model zoo: small worlds trained by the recipes in `tron.zoo.recipes`, shipped as safetensors."""
