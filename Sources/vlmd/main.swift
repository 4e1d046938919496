print("vlmd")
