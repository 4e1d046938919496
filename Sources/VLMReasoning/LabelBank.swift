// The default vocabulary CLIP tags regions with. Users pass their own bank for their domain.

public enum LabelBank {
    /// Everyday objects, animals, people and scenes: broad enough to say roughly what a photo shows,
    /// small enough (64 labels) that building the zero-shot classifier is quick.
    public static let common: [String] = [
        "person", "man", "woman", "child", "face", "astronaut", "crowd",
        "cat", "dog", "bird", "horse", "cow", "fish", "animal",
        "car", "truck", "bus", "bicycle", "motorcycle", "airplane", "boat", "train",
        "cup", "coffee", "plate", "food", "fruit", "bottle", "table", "chair", "bed", "sofa",
        "book", "phone", "computer", "camera", "clock", "coin", "money", "toy", "ball",
        "flower", "tree", "grass", "plant",
        "building", "house", "street", "road", "bridge", "room", "kitchen", "office",
        "sky", "cloud", "water", "beach", "mountain", "snow", "forest",
        "text", "logo", "pattern", "space",
    ]
}
